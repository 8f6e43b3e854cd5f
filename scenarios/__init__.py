"""The shipped scenario, story and study files (data only; resolved by ``ecosystem.formats.names``)."""
