//! CompuShare wire protocol.
#![no_std]
