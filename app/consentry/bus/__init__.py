"""Reporting and requests over MQTT (paho); a recording fake for unit tests."""
