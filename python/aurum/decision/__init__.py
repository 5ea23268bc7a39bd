"""The decision layer: pillars from the engines, the five-pillar scorer, the signal builder."""
