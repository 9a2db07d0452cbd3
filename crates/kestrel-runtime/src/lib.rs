//! kestrel-runtime
