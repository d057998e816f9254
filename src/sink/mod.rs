//! Where the objects go.

pub mod local;
