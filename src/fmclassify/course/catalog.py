"""A course as data (:class:`Course`), and the courses fmclassify knows, plugins included.

A course bundles a data set, its models and learning rates, its questions in order, its
budgets and, when it published any, its own numbers. :func:`register_course` adds one;
:func:`get_course` finds one by name; :func:`list_courses` lists them. Other packages add
courses through the entry-point group ``fmclassify.courses`` (beside the models' group
``fmclassify.models``): each entry point names a :class:`Course`, a function returning one,
or a module that calls :func:`register_course` when imported. Plugins load on the first
lookup; one that fails to load is reported with a warning and skipped.

Examples
--------
A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."fmclassify.courses"]
    cifar = "my_course:COURSE"
"""

from __future__ import annotations

import difflib
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from fmclassify._checks import check_device
from fmclassify.course.budget import BUDGETS, Budget
from fmclassify.exceptions import ConfigError

if TYPE_CHECKING:
    from fmclassify.course.answers import Answers
    from fmclassify.course.document import Document
    from fmclassify.course.questions import Question

__all__ = ["COURSE_ENTRY_POINT_GROUP", "Course", "get_course", "list_courses",
           "register_course"]

#: The entry-point group plugins use to add courses.
COURSE_ENTRY_POINT_GROUP = "fmclassify.courses"


@dataclass(frozen=True)
class Course:
    """A course: its data set, models, questions and budgets.

    Parameters
    ----------
    name : str
        The name ``fmclassify course NAME`` runs it by.
    title : str
        The report's title.
    questions : sequence of Question
        In the order the report answers them. Adding a question is one more object here.
    dataset : str, default "fashion-mnist"
        Any name :func:`~fmclassify.load_dataset` knows.
    models : sequence of str, default ("base",)
        Registered model names the questions compare (:attr:`Plan.models`); the command
        line's ``--models`` replaces them.
    lrs : sequence of float, default (0.1,)
        Learning rates the questions sweep (:attr:`Plan.lrs`); ``--lrs`` replaces them.
    budgets : mapping of str to Budget, default the assignment's
        Must hold ``"quick"`` (the CPU's default) and ``"full"`` (the course's protocol,
        the GPU's default); more are welcome.
    description : str, default ""
        One line shown by ``fmclassify courses``.
    published : object, optional
        The course's own numbers, shown beside ours when the runs are on ``dataset``
        (:attr:`Answers.published`); an attribute ``runs`` (e.g. ``"one run on all 60,000"``)
        says how the course measured them.
    intro : callable, optional
        ``intro(doc, answers)`` writes the paragraphs under the title; the default states
        the data, the budget and the run settings.
    source : str
        ``"built-in"``, or the plugin that registered it (set by :func:`register_course`).

    Raises
    ------
    ConfigError
        For no questions, two questions with one key, or budgets without ``quick`` and
        ``full``.
    """

    name: str
    title: str
    questions: Sequence[Question]
    dataset: str = "fashion-mnist"
    models: Sequence[str] = ("base",)
    lrs: Sequence[float] = (0.1,)
    budgets: Mapping[str, Budget] = field(default_factory=lambda: dict(BUDGETS))
    description: str = ""
    published: Any = None
    intro: Callable[[Document, Answers], None] | None = None
    source: str = "built-in"

    def __post_init__(self) -> None:
        object.__setattr__(self, "questions", tuple(self.questions))
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "lrs", tuple(self.lrs))
        if not self.questions:
            raise ConfigError(f"course {self.name!r} has no questions; give it at least one")
        keys = [q.key for q in self.questions]
        twice = sorted({k for k in keys if keys.count(k) > 1 or not k})
        if twice:
            raise ConfigError(f"course {self.name!r}: every question needs its own key, but "
                              f"{twice} is taken twice or empty; give each a distinct key")
        missing = [b for b in ("quick", "full") if b not in self.budgets]
        if missing:
            raise ConfigError(f"course {self.name!r} has no budget {' or '.join(missing)}; "
                              "give it budgets named quick and full")

    def budget(self, name: str | Budget, device: str = "auto") -> Budget:
        """The budget called ``name``; ``"auto"`` is ``full`` on a GPU, ``quick`` on the CPU.

        Raises
        ------
        ConfigError
            For a name that is neither ``"auto"`` nor one of :attr:`budgets`.
        """
        if isinstance(name, Budget):
            return name
        if name == "auto":
            name = "full" if check_device(device).type == "cuda" else "quick"
        if name not in self.budgets:
            names = ["auto", *self.budgets]
            raise ConfigError(f"unknown budget {name!r}; choose {', '.join(names[:-1])} or "
                              f"{names[-1]}")
        return self.budgets[name]


_courses: dict[str, Course] = {}
_lock = threading.RLock()
_plugins_loaded = False
_current_source = "built-in"


def register_course(course: Course, *, replace: bool = False) -> Course:
    """Add ``course`` under its name, so ``fmclassify course NAME`` runs it; return it.

    Raises
    ------
    ConfigError
        When another course has that name already and ``replace`` is False.

    Examples
    --------
    >>> from fmclassify.course import get_course, register_course
    >>> register_course(get_course("assignment"), replace=True).name
    'assignment'
    """
    if not isinstance(course, Course):
        raise ConfigError(f"register_course takes a Course, got {type(course).__name__}")
    with _lock:
        if course.name in _courses and not replace:
            raise ConfigError(f"a course named {course.name!r} is registered already; pass "
                              "replace=True to replace it, or choose another name")
        if _current_source != "built-in" and course.source == "built-in":
            from dataclasses import replace as with_field

            course = with_field(course, source=_current_source)
        _courses[course.name] = course
    return course


def _load_plugins() -> None:
    """Load every ``fmclassify.courses`` entry point once; warn for each that fails."""
    global _plugins_loaded, _current_source
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        if os.environ.get("FMCLASSIFY_NO_PLUGINS", "") not in ("", "0"):
            return
        for ep in entry_points(group=COURSE_ENTRY_POINT_GROUP):
            _current_source = ep.dist.name if ep.dist is not None else ep.value
            try:
                loaded = ep.load()
                if callable(loaded) and not isinstance(loaded, type):
                    loaded = loaded()  # a function that returns (or registers) a course
                if isinstance(loaded, Course) and loaded.name not in _courses:
                    register_course(loaded)
            except Exception as exc:
                warnings.warn(f"fmclassify course plugin {ep.name!r} from {_current_source!r} "
                              f"failed to load and was skipped: {type(exc).__name__}: {exc}",
                              RuntimeWarning, stacklevel=3)
            finally:
                _current_source = "built-in"


def get_course(name: str) -> Course:
    """The course registered as ``name``.

    Raises
    ------
    ConfigError
        For an unknown name; the message suggests the closest and lists them all.
    """
    _load_plugins()
    with _lock:
        if name in _courses:
            return _courses[name]
        known = sorted(_courses)
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    raise ConfigError(f"unknown course {name!r}; {hint}known: {', '.join(known)} (see "
                      "`fmclassify courses`, or add your own with register_course)")


def list_courses() -> list[Course]:
    """Every registered course (plugins included), by name."""
    _load_plugins()
    with _lock:
        return [_courses[k] for k in sorted(_courses)]
