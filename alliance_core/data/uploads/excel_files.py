"""Reading a coding sheet stored as an Excel workbook (.xlsx): the sheet and its rows."""

from __future__ import annotations

import io
import warnings

from alliance_core.data.uploads.read_report import UploadedTable
from alliance_core.data.uploads.sheet_frame import (
    detect_decimal,
    is_blank,
    too_many_rows,
    uploaded_table,
)
from alliance_core.data.xlsx_guard import check_xlsx_expansion
from alliance_core.errors import AnalysisError


def read_excel(
    data: bytes,
    file_name: str,
    *,
    sheet: str | int | None,
    decimal: str | None,
    real_values: tuple[str, ...] = (),
    extra_codes: tuple[str, ...] = (),
    max_rows: int,
) -> UploadedTable:
    import openpyxl  # only needed for workbooks; keeps importing this module light

    check_xlsx_expansion(data, file_name)  # before openpyxl expands any part
    try:
        with warnings.catch_warnings():
            # openpyxl warns about features it skips (styles, data validation); the values
            # are still read, and the warnings mean nothing to the user.
            warnings.simplefilter("ignore", UserWarning)
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many types (zip, XML, key errors) on damaged files
        raise AnalysisError(
            f"'{file_name}' could not be opened as an Excel workbook: it is damaged or not an "
            ".xlsx file. Open it in a spreadsheet program and save it as .xlsx or CSV."
        ) from None
    try:
        sheet_names = tuple(workbook.sheetnames)
        sheet_name = _choose_sheet(sheet_names, sheet, file_name)
        worksheet = workbook[sheet_name]
        if not hasattr(worksheet, "iter_rows"):
            raise AnalysisError(f"Sheet '{sheet_name}' of '{file_name}' holds no cells.")
        # Some programs write a wrong sheet size; reading without it reads every row.
        worksheet.reset_dimensions()
        header, rows, header_row = _sheet_records(worksheet, file_name, sheet_name, max_rows)
    except AnalysisError:
        raise
    except Exception:  # damaged sheet XML surfaces only while reading rows
        raise AnalysisError(
            f"'{file_name}' could not be read: the workbook is damaged. Open it in a "
            "spreadsheet program and save it again as .xlsx or CSV."
        ) from None
    finally:
        workbook.close()
    notes: list[str] = []
    if decimal is None:
        decimal, decimal_notes = detect_decimal(rows)
        notes.extend(f"Cells stored as text: {note}" for note in decimal_notes)
        if decimal == "," and not decimal_notes:
            notes.append(
                "Numbers stored as text use a decimal comma ('0,3') and were read as such."
            )
    return uploaded_table(
        header,
        rows,
        header_row,
        decimal,
        file_name,
        notes,
        real_values=real_values,
        extra_codes=extra_codes,
        file_format="excel",
        sheet_name=sheet_name,
        sheet_names=sheet_names,
    )


def _choose_sheet(sheet_names: tuple[str, ...], sheet: str | int | None, file_name: str) -> str:
    if not sheet_names:
        raise AnalysisError(f"'{file_name}' has no sheets.")
    if sheet is None:
        return sheet_names[0]
    if isinstance(sheet, int) and not isinstance(sheet, bool) and 0 <= sheet < len(sheet_names):
        return sheet_names[sheet]
    if sheet in sheet_names:
        return sheet
    listed = ", ".join(f"'{name}'" for name in sheet_names)
    raise AnalysisError(f"'{file_name}' has no sheet {sheet!r}; its sheets are {listed}.")


def _sheet_records(
    worksheet, file_name: str, sheet_name: str, max_rows: int
) -> tuple[list, list, int]:
    header: list | None = None
    header_row = 0
    rows: list[list] = []
    pending_blanks = 0
    for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
        if is_blank(values):
            if header is not None:
                pending_blanks += 1
            continue
        if header is None:
            header, header_row = list(values), number
            continue
        if len(rows) + pending_blanks + 1 > max_rows:
            raise too_many_rows(file_name, max_rows)
        rows.extend([] for _ in range(pending_blanks))
        pending_blanks = 0
        rows.append(list(values))
    if header is None:
        raise AnalysisError(f"Sheet '{sheet_name}' of '{file_name}' is empty.")
    return header, rows, header_row
