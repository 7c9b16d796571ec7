"""A local AWS for this SAM application: the real template and ASL deployed into moto, run in-process."""

from localcloud.cloud import LocalCloud, wait_for
from localcloud.deploy import DeployError, Stack
from localcloud.template import TemplateError

__all__ = ["DeployError", "LocalCloud", "Stack", "TemplateError", "wait_for"]
