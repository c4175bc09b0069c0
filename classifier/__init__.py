"""solicitation-classifier: risk-factor detection of possible solicitation of children."""
