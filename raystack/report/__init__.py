"""Self-contained HTML report of a scan run: summary, score curves, events with thumbnails."""

from raystack.report.build import ReportOptions, write_report

__all__ = ["ReportOptions", "write_report"]
