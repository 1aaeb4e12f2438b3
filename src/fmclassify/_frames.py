"""pandas DataFrames of the library's tables: one import check, one way to type the columns.

Private to the package. pandas is the optional extra ``fmclassify[pandas]``: it is imported
only when a ``to_dataframe`` method is called, and its absence is an error that names the
extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["frame", "pandas_for"]


def pandas_for(what: str) -> Any:
    """The pandas module, or an ImportError saying that ``what`` needs it and how to install it.

    Parameters
    ----------
    what : str
        The method that needs pandas, for the message (``"ExperimentResult.to_dataframe"``).

    Raises
    ------
    ImportError
        If pandas is not installed: ``pip install "fmclassify[pandas]"``.
    """
    try:
        import pandas  # optional: only the to_dataframe methods need it
    except ImportError:
        raise ImportError(f'{what} needs pandas; install it with '
                          f'pip install "fmclassify[pandas]"') from None
    return pandas


def frame(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str | None], *,
          what: str) -> Any:
    """A DataFrame of ``rows`` with exactly ``columns``, in that order, each of its dtype.

    Parameters
    ----------
    rows : sequence of mapping
        One mapping of column to value per row; a missing value is None.
    columns : mapping of str to str or None
        Column name to pandas dtype: ``"float64"`` (None becomes NaN), ``"int64"``,
        ``"Int64"`` (whole numbers that may be missing: None becomes ``<NA>``), ``"bool"``;
        None lets pandas infer it (text: ``object``, or ``str`` under pandas 3; tuples:
        ``object``; numbers with None: float64 with NaN).
    what : str
        The calling method, for the error when pandas is missing.

    Returns
    -------
    pandas.DataFrame
        With a default integer index.

    Examples
    --------
    >>> df = frame([{"lr": 0.1, "epoch": None}], {"lr": "float64", "epoch": "Int64"},
    ...            what="example")                                   # doctest: +SKIP
    >>> df.dtypes.tolist()                                           # doctest: +SKIP
    [dtype('float64'), Int64Dtype()]
    """
    pd = pandas_for(what)
    names = list(columns)
    data = pd.DataFrame([[row.get(name) for name in names] for row in rows], columns=names,
                        dtype=object)
    data = data.astype({name: dtype for name, dtype in columns.items() if dtype is not None})
    return data.infer_objects()  # the untyped columns only: the others are no longer object
