"""The naming rules a cluster enforces, checked here first: Kubernetes object names and image references.

Standard library only: the CLI's cluster commands check names before anything heavy loads.
"""
from __future__ import annotations

import re

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
IMAGE_NAME_MAX = 255

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(rf"{DNS_LABEL.pattern}(\.{DNS_LABEL.pattern})*")

# The grammar of github.com/distribution/reference (what the kubelet and containerd parse).
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)


def is_dns_label(value: str) -> bool:
    """A namespace, a ServiceAccount, a Service: lowercase letters, digits and '-', at most 63 characters."""
    return len(value) <= DNS_LABEL_MAX and DNS_LABEL.fullmatch(value) is not None


def is_dns_subdomain(value: str) -> bool:
    """Most object names (Workflows, templates, claims): DNS labels joined by '.', at most 253 characters."""
    return len(value) <= DNS_SUBDOMAIN_MAX and DNS_SUBDOMAIN.fullmatch(value) is not None


def image_reference_problem(value: str) -> str | None:
    """Why `value` is not an image reference a kubelet can pull (`[registry[:port]/]path[:tag][@digest]`), or None."""
    match = IMAGE_REFERENCE.fullmatch(value)
    if match is None:
        return (f"{value!r} is not an image reference; use [registry[:port]/]name[:tag][@sha256:digest] "
                "with a lowercase name, e.g. ghcr.io/org/image:1.0")
    if len(match.group("name")) > IMAGE_NAME_MAX:
        return f"the image name is {len(match.group('name'))} characters long; at most {IMAGE_NAME_MAX} are allowed"
    return None


class InvalidName(ValueError):
    """A name given on the command line or to the client that the cluster cannot hold; one line for the user."""


def checked_namespace(value: str, where: str = "namespace") -> str:
    """`value` if it is a valid namespace (a DNS-1123 label); else InvalidName saying what `where` needs."""
    if not is_dns_label(value):
        raise InvalidName(f"{where} {value!r} is not a namespace name: a DNS-1123 label (lowercase letters, "
                          f"digits and '-', starting and ending alphanumeric, at most {DNS_LABEL_MAX} characters)")
    return value


def checked_object_name(value: str, kind: str = "Workflow") -> str:
    """`value` if it is a valid name for a `kind` object (a DNS-1123 subdomain); else InvalidName."""
    if not is_dns_subdomain(value):
        raise InvalidName(f"{kind} name {value!r} is not valid: a DNS-1123 subdomain (lowercase letters, digits, "
                          f"'-' and '.', starting and ending alphanumeric, at most {DNS_SUBDOMAIN_MAX} characters)")
    return value
