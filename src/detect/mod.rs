//! Rules: each rule is one module; its docstring cites the clause or domain-doc section.

pub mod china3;
pub mod obd_dtc;
pub mod rsd_limits;
pub mod twc;
