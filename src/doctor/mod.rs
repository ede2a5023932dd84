//! `calops doctor`: prerequisite checks.
