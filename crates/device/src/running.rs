//! A device on a thread of its own ([`warren_os::thread`]): how the
//! control plane and the agent run their mesh device, so that nothing else
//! they do (QUIC, the admin API, reports) delays its packets.

use crate::{Device, DeviceError, DeviceHandle, DeviceOptions};
use tokio::sync::oneshot;
use warren_os::thread::Dedicated;

/// A device running on its own thread.
#[derive(Debug)]
pub struct RunningDevice {
    handle: DeviceHandle,
    stop: oneshot::Sender<()>,
    done: Dedicated<Result<(), DeviceError>>,
}

impl RunningDevice {
    /// Creates the device described by `options` on a new thread and
    /// starts it; returns once it is up (or why it could not be created).
    pub async fn start(options: DeviceOptions) -> Result<RunningDevice, DeviceError> {
        let (created, up) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = warren_os::thread::spawn("warren-device", move || async move {
            let device = match Device::create(options).await {
                Ok(device) => device,
                Err(error) => {
                    let _ = created.send(Err(error));
                    return Ok(());
                }
            };
            let _ = created.send(Ok(device.handle()));
            device
                .run(async {
                    let _ = stopped.await;
                })
                .await
        })
        .map_err(DeviceError::Thread)?;
        let handle = up.await.map_err(|_| DeviceError::ThreadGone)??;
        Ok(RunningDevice { handle, stop, done })
    }

    /// Talks to the device.
    pub fn handle(&self) -> DeviceHandle {
        self.handle.clone()
    }

    /// Stops the device (it removes its interface and UAPI socket) and
    /// waits until it has.
    pub async fn stop(self) -> Result<(), DeviceError> {
        let _ = self.stop.send(());
        self.done
            .join()
            .await
            .unwrap_or(Err(DeviceError::ThreadGone))
    }
}
