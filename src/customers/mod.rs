//! What icbridge keeps for and about customers: opting out, the rating after a call, their
//! data on request, retention, and every text a customer reads (`texts`).

pub mod data;
pub mod opt_out;
pub mod retention;
pub mod survey;
pub mod texts;
