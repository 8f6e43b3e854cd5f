"""The engine: rewards, curation, families, flows, topologies, rounds, agents, model, events, metrics."""
