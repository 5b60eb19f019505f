"""The naming rules a cluster enforces, checked here first: Kubernetes object names and image references.

Standard library only: the CLI's cluster commands check names before anything heavy loads.
"""
from __future__ import annotations

import re

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
IMAGE_NAME_MAX = 255
SECRET_KEY_MAX = 253

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(rf"{DNS_LABEL.pattern}(\.{DNS_LABEL.pattern})*")
# A label value, and the name part of a label key, taint key or extended resource name.
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")

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


def object_name_problem(value: str) -> str | None:
    """Why `value` cannot name a Kubernetes object (claim, StorageClass, PriorityClass, Secret), or None."""
    if is_dns_subdomain(value):
        return None
    return (f"{value!r} is not an object name: a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', "
            f"starting and ending alphanumeric, at most {DNS_SUBDOMAIN_MAX} characters)")


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a label value (empty, or up to 63 of letters, digits, '-', '_', '.'), or None."""
    if not value or (len(value) <= DNS_LABEL_MAX and LABEL_NAME.fullmatch(value)):
        return None
    return (f"{value!r} is not a label value: at most {DNS_LABEL_MAX} letters, digits, '-', '_' and '.', "
            "starting and ending alphanumeric")


def qualified_name_problem(value: str) -> str | None:
    """Why `value` is not a label key, taint key or resource name (`[prefix/]name`, e.g. nvidia.com/gpu), or None."""
    prefix, slash, name = value.rpartition("/")
    if (len(name) <= DNS_LABEL_MAX and LABEL_NAME.fullmatch(name)
            and (not slash or is_dns_subdomain(prefix))):
        return None
    return (f"{value!r} is not a qualified name: [DNS subdomain/]name, the name at most {DNS_LABEL_MAX} letters, "
            "digits, '-', '_' and '.', e.g. nvidia.com/gpu.product")


def secret_key_problem(value: str) -> str | None:
    """Why `value` cannot be a key of a Secret, or None."""
    if len(value) <= SECRET_KEY_MAX and SECRET_KEY.fullmatch(value):
        return None
    return f"{value!r} is not a Secret key: letters, digits, '-', '_' and '.', at most {SECRET_KEY_MAX}"


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
