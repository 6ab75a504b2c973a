"""source_url checks at submission: https only by default, no credentials, absolute."""

from __future__ import annotations

import pytest

from detectflow.jobs.errors import DetectflowError, ErrorCode
from detectflow.sources import check_source_url


def test_sources_https_is_accepted_and_http_only_when_allowed():
    assert check_source_url("https://example.org/a.jpg") == "https://example.org/a.jpg"
    assert check_source_url("http://example.org/a.jpg", allow_http=True)
    with pytest.raises(DetectflowError) as err:
        check_source_url("http://example.org/a.jpg")
    assert err.value.code is ErrorCode.validation_error and "https" in err.value.message


@pytest.mark.parametrize("bad", ["ftp://example.org/a", "https://user:pw@example.org/a", "/a.jpg", "example.org"])
def test_sources_refuse_what_is_not_an_absolute_url_without_credentials(bad):
    with pytest.raises(DetectflowError):
        check_source_url(bad, allow_http=True)
