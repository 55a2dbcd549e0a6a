//! Private CA and certificates (owned by the pki work).
