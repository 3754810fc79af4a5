//! Wire formats shared by the `pos-terminal` SDK, the `pos-sim` simulator and anyone
//! implementing the other side: the reader protocol (`reader`), the backend API bodies
//! (`backend`) and the test-card outcome rules (`outcomes`). No browser or server code here.

pub mod backend;
pub mod outcomes;
pub mod reader;

/// The card data a receipt may show. Never a PAN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardSummary {
    /// `visa`, `mastercard`, `amex`, `discover`, `diners`, `jcb`, `unionpay`, `interac` or `unknown`.
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
}
