"""The etcd gateway client's pure parts: endpoints as users write them, prefix ranges, error answers."""

from __future__ import annotations

import pytest

from isobox.errors import InvalidArgumentError
from isobox.state import etcd_gateway as gw


def test_endpoints_are_parsed_and_bad_ones_named() -> None:
    assert gw.parse_endpoints("http://10.0.0.1:2379, https://etcd.example:2379/,http://10.0.0.1:2379") == (
        "http://10.0.0.1:2379", "https://etcd.example:2379")
    for bad in ("10.0.0.1:2379", "http://10.0.0.1", "unix:///run/etcd.sock", ""):
        with pytest.raises(InvalidArgumentError, match="etcd endpoint"):
            gw.parse_endpoints(bad)


def test_prefix_ranges_follow_etcds_rule() -> None:
    assert gw.prefix_end(b"/isobox/nodes/") == b"/isobox/nodes0"
    assert gw.prefix_end(b"a\xff") == b"b"
    assert gw.prefix_end(b"\xff\xff") == b"\0"


def test_error_answers_of_unary_and_streaming_calls() -> None:
    unary = gw._error({"error": "etcdserver: requested lease not found", "message": "lease not found", "code": 5}, "p")
    assert unary is not None and unary.code == gw.GRPC_NOT_FOUND and unary.message == "lease not found"
    streamed = gw._error({"error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader"}}, "w")
    assert streamed is not None and streamed.code == gw.GRPC_UNAVAILABLE
    assert gw._error({"header": {"revision": "3"}, "kvs": []}, "kv/range") is None


def test_a_client_certificate_needs_its_key(tmp_path: object) -> None:
    from pathlib import Path

    with pytest.raises(InvalidArgumentError, match="needs its key"):
        gw.Gateway("https://127.0.0.1:2379", tls=gw.EtcdTLS(client_cert=Path("/nonexistent.pem")))
