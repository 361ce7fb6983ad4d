"""`phiwatch watch`: scheduled scans, each finding's lifecycle across runs, and alerts.

tables.py holds the store's tables; lifecycle.py the state machine and the read API the dashboard
uses; config.py the YAML configuration; alerts.py the senders; outbox.py delivery; runner.py the loop.
"""
