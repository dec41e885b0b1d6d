//! The integration tests of jido-workflow, one binary.

mod definition;
