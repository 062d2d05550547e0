"""What referral's FHIR routes are given: the store, and the FHIR reads over the same
connection (paging is ``careloop_shared.fhir.Paging``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from careloop_shared.http import read_store
from referral.fhir.store import FhirStore
from referral.store import ReferralStore

Store = Annotated[ReferralStore, Depends(read_store)]


async def fhir_store(store: Store) -> FhirStore:
    return FhirStore(store.loop.db)


Reads = Annotated[FhirStore, Depends(fhir_store)]
