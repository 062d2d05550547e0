"""Keys the record database does not hold: parsing, MAC rotation, and the checkpoint series' checks."""

from __future__ import annotations

import base64
import itertools
import json
import os
import uuid
from datetime import UTC, datetime

import pytest

from careloop_shared.settings import ServiceSettings
from record.checkpoints import CHECKPOINTS_PER_SEARCH, sign_moved_heads
from record.config import DEV_CHAIN_KEYS, RecordContext, RecordSettings, refuse_development_keys_off_loopback
from record.domain.witness import (
    ChainKeys,
    Head,
    KeyProblem,
    SigningKeys,
    check_series,
    digest,
    make_checkpoint,
    parse_keys,
    signature_holds,
)

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _key(n: int = 32) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def _signer(kid: str = "s1") -> SigningKeys:
    return SigningKeys.from_settings(f"{kid}:{_key()}", None)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no key given"),
        ("nokid", "each key is kid:base64"),
        ("k1:not*base64", "not base64"),
        (f"k1:{_key()},k1:{_key()}", "given twice"),
    ],
)
def test_a_bad_key_setting_is_named_without_the_key(text, says):
    with pytest.raises(KeyProblem, match=says) as refused:
        parse_keys(text, "RECORD_CHAIN_KEYS")
    assert "RECORD_CHAIN_KEYS" in str(refused.value)
    secret = text.partition(":")[2]
    assert not secret or secret not in str(refused.value)


def test_a_short_chain_key_is_refused():
    with pytest.raises(KeyProblem, match="shorter than 32 bytes"):
        ChainKeys(parse_keys(f"k1:{_key(16)}", "RECORD_CHAIN_KEYS"))


def test_after_a_rotation_new_entries_take_the_new_key_and_old_ones_still_verify():
    old_text = f"k1:{_key()}"
    old = ChainKeys(parse_keys(old_text, "RECORD_CHAIN_KEYS"))
    kid, mac = old.mac(b"h" * 32)
    rotated = ChainKeys(parse_keys(f"k2:{_key()},{old_text}", "RECORD_CHAIN_KEYS"))
    assert rotated.current == "k2" and rotated.mac(b"h" * 32)[0] == "k2"
    assert rotated.authentic(b"h" * 32, kid, mac)
    assert not rotated.authentic(b"x" * 32, kid, mac)
    assert not rotated.authentic(b"h" * 32, None, None)  # an entry without a MAC is not authentic
    dropped = ChainKeys(parse_keys(f"k2:{_key()}", "RECORD_CHAIN_KEYS"))
    assert not dropped.authentic(b"h" * 32, kid, mac)  # a key no longer held verifies nothing


def _series(keys: SigningKeys, n: int) -> list[dict]:
    series, previous = [], None
    for number in range(1, n + 1):
        heads = [Head(uuid.uuid4(), number, os.urandom(32))]
        checkpoint = make_checkpoint(keys, number, AT, previous, heads)
        series.append(checkpoint)
        previous = digest(checkpoint)
    return series


def test_a_series_of_checkpoints_holds_and_each_kind_of_tampering_is_named():
    keys = _signer()
    series = _series(keys, 4)
    assert check_series(keys, series).intact

    dropped = check_series(keys, [series[0], series[1], series[3]])
    assert (dropped.intact, dropped.problem, dropped.checkpoint) == (False, "checkpoint 3 missing", 4)

    forged = dict(series[2], heads=[[str(uuid.uuid4()), 1, "00" * 32]])
    changed = check_series(keys, [series[0], series[1], forged, series[3]])
    assert (changed.problem, changed.checkpoint) == ("signature does not hold", 3)

    # Re-signed by someone else's key: not a key the verifier accepts.
    stranger = _signer("s1")
    resigned = make_checkpoint(stranger, 3, AT, digest(series[1]), [Head(uuid.uuid4(), 1, os.urandom(32))])
    assert not signature_holds(keys, resigned)

    # A valid checkpoint 2 from another series does not link to this checkpoint 1.
    other = _series(keys, 2)
    assert check_series(keys, [series[0], other[1]]).problem == "does not link to the checkpoint before it"


def test_checkpoints_signed_before_a_signing_key_rotation_verify_with_the_old_public_key():
    old = _signer("s1")
    old_public = base64.b64encode(old.public["s1"].public_bytes_raw()).decode()
    series = _series(old, 2)
    new = SigningKeys.from_settings(f"s2:{_key()}", f"s1:{old_public}")
    assert check_series(new, series).intact
    assert make_checkpoint(new, 3, AT, digest(series[1]), [])["key_id"] == "s2"


def test_the_development_keys_are_refused_off_loopback():
    with pytest.raises(SystemExit, match="development record keys"):
        refuse_development_keys_off_loopback(RecordSettings(host="0.0.0.0"))
    assert RecordSettings().chain_keys.get_secret_value() == DEV_CHAIN_KEYS
    own = RecordSettings(host="0.0.0.0", chain_keys=f"k:{_key()}", checkpoint_signing_key=f"s:{_key()}")
    refuse_development_keys_off_loopback(own)  # no exit


def test_a_checkpoint_of_the_most_heads_allowed_fits_one_kafka_record():
    """The broker refuses records over 1 MB by default: a checkpoint that could not be published would
    hold up every one after it (seen on a development database with 700,000 patients)."""
    import json

    most = RecordSettings.model_fields["checkpoint_max_heads"].metadata
    limit = next(m.le for m in most if hasattr(m, "le"))
    heads = [Head(uuid.uuid4(), 10**9, os.urandom(32)) for _ in range(limit)]
    document = json.dumps(make_checkpoint(_signer(), 10**9, AT, os.urandom(32), heads), separators=(",", ":"))
    assert len(document.encode()) < 1_000_000


def test_record_gathers_its_fetches_and_the_services_on_the_journeys_path_do_not():
    """record is off the journey's path: its fetches wait up to 500 ms for more records (README,
    Performance); a deployment can set RECORD_CONSUMER_FETCH_WAIT_MS, 0 answering at once. The services on
    the path answer at once and linger 20 ms after a poll that found a few records; record, whose fetches
    already gather, does not."""
    assert RecordSettings().consumer_fetch_wait_ms == 500
    assert RecordSettings(consumer_fetch_wait_ms=0).consumer_fetch_wait_ms == 0
    assert ServiceSettings().consumer_fetch_wait_ms == 0
    assert (ServiceSettings().consumer_linger_ms, RecordSettings().consumer_linger_ms) == (20, 0)


class _Heads:
    """What ``sign_moved_heads`` needs of the store, in memory: heads that moved, checkpoints saved."""

    def __init__(self, moved: int, signed_before: int = 0) -> None:
        self.moved = [
            {"patient_id": uuid.UUID(int=i + 1), "seq": 3, "hash": os.urandom(32)} for i in range(moved)
        ]
        self.saved: list[tuple[int, bytes, str, list[uuid.UUID]]] = []
        self.searches: list[int] = []
        self.before = (signed_before, b"\x07" * 32) if signed_before else None

    async def lock_checkpoints(self) -> bool:
        return True

    async def moved_heads(self, limit: int) -> list[dict]:
        self.searches.append(limit)
        return self.moved[:limit]

    async def last_checkpoint(self) -> tuple[int, bytes] | None:
        return self.before

    async def save_checkpoint(self, checkpoint, at, digest_, document, heads) -> None:
        self.saved.append((checkpoint, digest_, document, [h["patient_id"] for h in heads]))


async def test_one_search_for_moved_heads_signs_as_many_linked_checkpoints_as_they_need():
    """The search reads every head, so one serves several checkpoints of ``checkpoint_max_heads`` each,
    numbered on from the last one and each linked to the one before: the series holds as one signed alone."""
    signer = _signer()
    ctx = RecordContext(summaries=None, clock=lambda: AT, signing_keys=signer, checkpoint_max_heads=3)
    store = _Heads(moved=7, signed_before=4)
    assert await sign_moved_heads(ctx, store) == (7, False)  # 5, 6 and 7; nothing more waits
    assert store.searches == [3 * CHECKPOINTS_PER_SEARCH]
    documents = [json.loads(document) for _, _, document, _ in store.saved]
    assert [d["checkpoint"] for d in documents] == [5, 6, 7]
    assert [len(patients) for *_, patients in store.saved] == [3, 3, 1]
    signed = [uuid.UUID(h[0]) for d in documents for h in d["heads"]]
    assert sorted(signed) == sorted(h["patient_id"] for h in store.moved)  # each moved head once
    assert documents[0]["previous"] == (b"\x07" * 32).hex()
    for before, after in itertools.pairwise(store.saved):  # each saved digest is what the next links to
        assert json.loads(after[2])["previous"] == before[1].hex() == digest(json.loads(before[2])).hex()
    assert all(signature_holds(signer, d) for d in documents)


async def test_a_search_that_found_as_many_heads_as_it_asked_for_says_more_wait():
    signer = _signer()
    ctx = RecordContext(summaries=None, clock=lambda: AT, signing_keys=signer, checkpoint_max_heads=2)
    store = _Heads(moved=2 * CHECKPOINTS_PER_SEARCH + 1)
    assert await sign_moved_heads(ctx, store) == (CHECKPOINTS_PER_SEARCH, True)
    assert [n for n, *_ in store.saved] == list(range(1, CHECKPOINTS_PER_SEARCH + 1))
    assert check_series(signer, [json.loads(document) for _, _, document, _ in store.saved]).intact
    assert await sign_moved_heads(ctx, _Heads(moved=0)) is None
