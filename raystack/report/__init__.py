"""HTML report of a scan run: index (summary, events, videos), a page per video, thumbnails."""

from raystack.report.build import Report, ReportOptions, build_report, write_report

__all__ = ["Report", "ReportOptions", "build_report", "write_report"]
