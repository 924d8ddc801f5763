"""The AWS wire protocols loopin serves (SageMaker runtime, and more to come)."""
