from __future__ import annotations

import io
from datetime import date

from flask import Response, abort, render_template, request
from flask_login import current_user, login_required

from app import policy
from app.params import BadParameter
from app.reports import bp
from app.reports.charts import lines, stacked_bars
from app.services import reports
from app.services.spreadsheet import write_csv


# Years a report's period may name: wide enough for any record, and far from the calendar's end
# (9999-12-31 + one day, the end of a period, is no date).
REPORT_FIRST_YEAR, REPORT_LAST_YEAR = 1900, 2999


def _period() -> tuple[reports.Period, str | None]:
    """From ``from`` and ``to`` (YYYY-MM-DD); default: the last twelve months."""
    default = reports.Period.last_months(12)
    try:
        start = date.fromisoformat(request.args["from"]) if request.args.get("from") else default.start
        end = date.fromisoformat(request.args["to"]) if request.args.get("to") else default.end
    except ValueError:
        return default, "期間は 2025-04-01 の形式で指定してください。"
    if not (REPORT_FIRST_YEAR <= start.year and end.year <= REPORT_LAST_YEAR):
        return default, f"期間は{REPORT_FIRST_YEAR}年から{REPORT_LAST_YEAR}年の間で指定してください。"
    if start > end:
        return default, "期間の終わりは始まりより後にしてください。"
    if (end - start).days > 366 * 5:
        return default, "期間は5年以内にしてください。"
    return reports.Period(start, end), None


def _table(months: list[str], per_month: dict) -> tuple[list[str], dict[str, list[int]]]:
    names = sorted({name for counter in per_month.values() for name in counter})
    return names, {name: [per_month.get(m, {}).get(name, 0) for m in months] for name in names}


@bp.get("/reports")
@login_required
def index():
    period, error = _period()
    months = period.months
    labels = [m[2:].replace("-", "/") for m in months]
    if policy.can_view_dashboard(current_user):
        data = reports.dashboard(current_user, period)
        charts, tables = {}, {}
        for dimension, title in (("category", "分類別の相談件数"), ("kind", "種類別の相談件数"), ("municipality", "市町別の相談件数")):
            names, series = _table(months, data.by_month[dimension])
            tables[dimension] = (title, names, series)
            charts[dimension] = stacked_bars(title, labels, series)
        times = {"初回応答": [data.median_first_response[m] for m in months],
                 "解決まで（回答待ちを除く）": [data.median_resolution[m] for m in months]}
        charts["times"] = lines("応答・解決までの時間（中央値）", labels, times, "時間")
        backlog_labels = list(data.backlog)
        statuses = sorted({s for counter in data.backlog.values() for s in counter})
        backlog = {s: [data.backlog[label].get(s, 0) for label in backlog_labels] for s in statuses}
        charts["backlog"] = stacked_bars("未完了の相談（経過日数・状態別）", backlog_labels, backlog)
        return render_template("reports/dashboard.html", data=data, period=period, months=months, labels=labels,
                               charts=charts, tables=tables, times=times, backlog=backlog,
                               backlog_labels=backlog_labels, error=error)
    if policy.can_view_municipal_report(current_user):
        data = reports.municipal_report(current_user, period)
        names, series = _table(months, data.questions_by_month)
        chart = stacked_bars(f"{data.municipality.name}の相談件数（状態別）", labels, series)
        return render_template("reports/municipal.html", data=data, period=period, months=months, labels=labels,
                               chart=chart, names=names, series=series, error=error)
    abort(403)


def _csv(filename: str, columns: list[str], rows: list[dict]) -> Response:
    """UTF-8 with a BOM (Excel opens it in Japanese), formula cells neutralised."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    write_csv(buffer, columns, rows)
    response = Response(buffer.getvalue().encode("utf-8"), mimetype="text/csv")
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{filename}"
    return response


@bp.get("/reports/questions.csv")
@login_required
def questions_csv():
    period, error = _period()
    if error:
        raise BadParameter("from", error)
    return _csv(f"questions-{period.start}-{period.end}.csv", reports.QUESTION_COLUMNS,
                reports.question_rows(current_user, period))


@bp.get("/reports/cases.csv")
@login_required
def cases_csv():
    period, error = _period()
    if error:
        raise BadParameter("from", error)
    return _csv(f"cases-{period.start}-{period.end}.csv", reports.CASE_COLUMNS, reports.case_rows(current_user, period))


@bp.get("/reports/yearly.csv")
@login_required
def yearly_csv():
    """The summary for the prefectural council: one sheet, a row per municipality for the 年度."""
    if not policy.can_view_dashboard(current_user):
        abort(403)
    raw = request.args.get("year") or ""
    if not (raw.isascii() and raw.isdigit() and 2000 <= int(raw) <= 2100):
        abort(400)
    year = int(raw)
    return _csv(f"yearly-summary-FY{year}.csv", reports.YEARLY_COLUMNS, reports.yearly_rows(current_user, year))
