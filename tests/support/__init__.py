"""What test modules share: helpers, configs, stimulus and checks, faulty blocks. Test
modules import from here only, never from each other (tests/test_architecture.py checks it);
pytest fixtures stay in conftest.py."""
