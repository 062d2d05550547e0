"""What a consumer commits after a batch: per partition the batch read, the offset after its last record;
partitions it did not read are left alone (their committed offsets stay as they were)."""

from types import SimpleNamespace

from aiokafka import TopicPartition

from careloop_shared.kafka import next_offsets


def _record(topic: str, partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset)


def test_each_partition_read_commits_the_offset_after_its_last_record():
    batch = [_record("a", 0, 7), _record("b", 2, 40), _record("a", 0, 8), _record("a", 1, 3)]
    assert next_offsets(batch) == {
        TopicPartition("a", 0): 9,
        TopicPartition("a", 1): 4,
        TopicPartition("b", 2): 41,
    }


def test_records_out_of_order_within_a_partition_still_commit_past_the_highest():
    assert next_offsets([_record("a", 0, 12), _record("a", 0, 10)]) == {TopicPartition("a", 0): 13}


def test_an_empty_batch_commits_nothing():
    assert next_offsets([]) == {}
