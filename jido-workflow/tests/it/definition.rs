//! Definitions: parsing, validation, limits, hashes.
