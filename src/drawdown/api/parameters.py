"""The path and query parameters many routes share, declared once."""

from typing import Annotated

from fastapi import Depends, Path, Query

from drawdown.api.auth import caller, writer
from drawdown.api.fields import Identifier
from drawdown.api.routing import Context, context
from drawdown.services.keys import Principal

AccountId = Annotated[Identifier, Path(description="Identifier of the account")]
CustomerId = Annotated[Identifier, Path(description="Identifier of the customer")]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=50)]
NextToken = Annotated[str | None, Query(alias="nextToken", max_length=500)]

# the caller every route behind a key has (a writer: not read-only), and the request's context
Reader = Annotated[Principal, Depends(caller)]
Writer = Annotated[Principal, Depends(writer)]
RequestContext = Annotated[Context, Depends(context)]
