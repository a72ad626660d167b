"""`metadata` is checked at the edge for what the store keeps: a list directly in a list is
refused (FerretDB answers BadValue for one, which reached the user as a 500)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from stackyard.auth.contract import UpdateUserRequest


def test_a_list_directly_in_a_list_is_refused_with_where_it_is():
    with pytest.raises(ValidationError, match=r"metadata\.tags\[1\]: a list directly in a list"):
        UpdateUserRequest.model_validate({"metadata": {"tags": ["a", ["b"]]}})


def test_a_list_of_objects_holding_lists_is_kept():
    body = UpdateUserRequest.model_validate({"metadata": {"rows": [{"cells": [1, 2]}, {"cells": []}]}})
    assert body.metadata == {"rows": [{"cells": [1, 2]}, {"cells": []}]}
