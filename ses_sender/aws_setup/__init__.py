"""Wiring an AWS account to this service (`ses-sender setup-aws`) and checking it (`doctor`)."""
