from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ses_sender.ses_events.ingester import Ingester
from ses_sender.ses_events.sns import HttpsFetcher, SnsVerifier
from ses_sender.web.provided import Provided

VERIFIER = Provided[SnsVerifier]("SNS verifier")
FETCHER = Provided[HttpsFetcher]("HTTPS fetcher for SubscribeURLs")
INGESTER = Provided[Ingester]("SES event ingester")

SnsVerifierDep = Annotated[SnsVerifier, Depends(VERIFIER)]
FetcherDep = Annotated[HttpsFetcher, Depends(FETCHER)]
IngesterDep = Annotated[Ingester, Depends(INGESTER)]
