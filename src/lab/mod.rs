//! The lab: a disposable systemd sandbox with nginx and PHP-FPM, for the demo and the
//! end-to-end tests.
