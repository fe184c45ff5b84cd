"""Level 1: when a class's new version may replace the old one under a live object."""

from __future__ import annotations

from typing import Any

import pytest
from hotswap.warm_follow import MustRebuild, check_construction, method_changes


def versions(source: str, edited: str) -> tuple[Any, Any]:
    """The class ``Model`` as two imports of a module would define it."""
    classes = []
    for text in (source, edited):
        namespace: dict[str, Any] = {"__name__": "model"}
        exec(compile(text, "model.py", "exec"), namespace)
        classes.append(namespace["Model"])
    return classes[0], classes[1]


BASE = """\
class Base:
    pass


class Other:
    pass


class Model(Base):
    def __init__(self):
        self.size = 3
        self.setup()

    def setup(self):
        self.table = [0] * self.size

    def forward(self, x):
        return x + 1
"""


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("self.size = 3", "self.size = 4"), "Model.__init__ changed"),
        (("[0] * self.size", "[1] * self.size"), "Model.setup changed"),
        (("class Model(Base):", "class Model(Other):"), "the base classes of Model changed"),
        (
            ("class Model(Base):", "class Model(Base):\n    __slots__ = ('a',)"),
            "Model.__slots__ changed",
        ),
    ],
    ids=["init", "a-method-init-calls", "bases", "slots"],
)
def test_construction_changes_must_rebuild(edit: tuple[str, str], reason: str) -> None:
    old, new = versions(BASE, BASE.replace(*edit))
    with pytest.raises(MustRebuild) as info:
        check_construction(old, new)
    assert str(info.value) == reason


def test_a_forward_edit_may_swap_in_place_and_is_named() -> None:
    old, new = versions(BASE, BASE.replace("x + 1", "x + 2") + "\nModel.extra = lambda s: 0\n")
    check_construction(old, new)
    assert method_changes(old, new) == [
        "Model.extra added in place",
        "Model.forward updated in place",
    ]
    same, again = versions(BASE, BASE)
    assert method_changes(same, again) == [], "a re-import alone says nothing"
