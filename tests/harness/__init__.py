"""Test harnesses that run from a clone, never from the wheel: tiny stand-in models (`tiny`), fault injection
(`chaos`, `make chaos`) and the tiny smoke run's check (`smoke_check`)."""
