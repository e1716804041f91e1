"""Cases: machines compiled from published definitions, persistence,
working-day deadlines and the audit trail. Depends on :mod:`procedures` only."""
