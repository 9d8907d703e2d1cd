//! Whole deployments in QEMU (issue 8 fills this in): test images built with mmdebstrap and
//! cached outside the checkout, an ephemeral OS (kernel + busybox initramfs + static deployer),
//! a loopback server for config, image and events, and QEMU runs of the deploy and first boot.
