"""Evaluation: K scored samples per problem, self-verification and inference-time scaling."""
