import pydantic
import pytest

from trainlab.errors import ConfigError
from trainlab.registry import Registry


def make_registry():
    things = Registry("things")

    @things.register(injected=("size",))
    def box(*, size: int, colour: str = "red", depth: float = 1.0):
        """A box of a colour."""
        return (size, colour, depth)

    @things.register("ball")
    def make_ball(*, radius: float):
        return radius

    return things


def test_builders_are_found_by_name_and_listed_by_glob():
    things = make_registry()
    assert things.names() == ["ball", "box"]
    assert things.names("b?x") == ["box"]
    assert things.build("box", size=3, colour="blue") == (3, "blue", 1.0)
    assert things.describe("box") == "A box of a colour."


def test_unknown_name_suggests_the_closest_and_lists_all():
    with pytest.raises(ConfigError, match=r"unknown thing 'bx' \(did you mean 'box'\?\); known things: ball, box"):
        make_registry().get("bx")


def test_arguments_are_validated_from_the_annotations_with_defaults_filled():
    things = make_registry()
    assert things.validate("box", {"depth": "2.5"}) == {"colour": "red", "depth": 2.5}
    with pytest.raises(pydantic.ValidationError):
        things.validate("box", {"colr": "blue"})
    with pytest.raises(pydantic.ValidationError):
        things.validate("ball", {})  # radius is required


def test_injected_arguments_are_not_config_keys():
    things = make_registry()
    assert list(things.arguments("box")) == ["colour", "depth"]
    with pytest.raises(ConfigError, match="'size' is set by trainlab"):
        things.validate("box", {"size": 2})


def test_a_name_cannot_be_registered_twice():
    things = make_registry()
    with pytest.raises(ValueError, match="registered twice"):
        things.register("box")(lambda: None)
