//! kestrel-train
