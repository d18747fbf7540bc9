//! Placeholder; the firmware lands with the streaming issue.
#![no_std]
#![no_main]
