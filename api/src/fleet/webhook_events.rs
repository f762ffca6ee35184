//! The events a fleet webhook may subscribe to (the seed's example names
//! `device.online`, `device.offline` and `alert.triggered`; the others are
//! the WebSocket API's events as webhooks). Each is written to the fleet
//! outbox in the transaction of its cause (`store::fleet::webhooks`).

/// Something a fleet webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FleetWebhookEvent {
    DeviceOnline,
    DeviceOffline,
    MeetingStarted,
    MeetingEnded,
    AlertTriggered,
    AlertCleared,
}

impl FleetWebhookEvent {
    pub const ALL: &'static [FleetWebhookEvent] = &[
        FleetWebhookEvent::DeviceOnline,
        FleetWebhookEvent::DeviceOffline,
        FleetWebhookEvent::MeetingStarted,
        FleetWebhookEvent::MeetingEnded,
        FleetWebhookEvent::AlertTriggered,
        FleetWebhookEvent::AlertCleared,
    ];

    /// The dotted name, e.g. `device.online`.
    pub fn name(self) -> &'static str {
        match self {
            FleetWebhookEvent::DeviceOnline => "device.online",
            FleetWebhookEvent::DeviceOffline => "device.offline",
            FleetWebhookEvent::MeetingStarted => "meeting.started",
            FleetWebhookEvent::MeetingEnded => "meeting.ended",
            FleetWebhookEvent::AlertTriggered => "alert.triggered",
            FleetWebhookEvent::AlertCleared => "alert.cleared",
        }
    }

    /// Parses a dotted name exactly as [`FleetWebhookEvent::name`] spells it.
    pub fn parse(s: &str) -> Option<FleetWebhookEvent> {
        FleetWebhookEvent::ALL
            .iter()
            .copied()
            .find(|e| e.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_nothing_else_does() {
        for e in FleetWebhookEvent::ALL {
            assert_eq!(FleetWebhookEvent::parse(e.name()), Some(*e));
        }
        for bad in [
            "",
            "device",
            "device_online",
            "DEVICE.ONLINE",
            "device.status",
        ] {
            assert_eq!(FleetWebhookEvent::parse(bad), None, "{bad}");
        }
    }
}
