"""The visual report: report.html and a PNG contact sheet of the selection."""
