import Foundation
import callahead

// The screen's state, the same shapes as the Kotlin view model's
// (com.callahead.demo): an iOS and an Android screen show the same things.

/// The binding types the screens use, so an app imports CallaheadKit alone.
public typealias ClientSettings = callahead.ClientSettings
public typealias ConnectionState = callahead.ConnectionState
public typealias Outcome = callahead.Outcome
public typealias GeoPoint = callahead.GeoPoint

/// How the estimated arrival relates to the customer's delivery window.
public enum WindowFit: Equatable, Sendable {
    case inside, early, late, unknown
}

/// What the courier sees for one stop's smart call.
public enum StopStatus: Equatable, Sendable {
    /// No call requested yet.
    case idle
    /// Tapped and stored; waiting for signal or for a free line (5 at most).
    case queued
    /// The request is on its way to the server.
    case sending
    /// Attempt `attempt` of `maxAttempts` is being placed or is due.
    case calling(attempt: Int, maxAttempts: Int)
    case ringing
    /// The customer picked up and is listening to the message.
    case answered
    case done(Outcome)
    case cancelled
    /// The server refused the request for good; `code` is its wire code.
    case failed(code: String, message: String)
}

/// One line of a stop's history: "Attempt 1 ringing", "Key 1 pressed", "Confirmed".
public struct TimelineEntry: Equatable, Sendable {
    public let at: Date
    public let label: String

    public init(at: Date, label: String) {
        self.at = at
        self.label = label
    }
}

public struct StopRow: Equatable, Identifiable, Sendable {
    public let stopId: Int64
    public let sequence: Int
    public let customerName: String
    public let address: String
    /// "10:00–11:00" in the customer's time zone.
    public let windowText: String
    /// Estimated arrival, "10:25" in the customer's time zone; nil until planned or once visited.
    public let etaText: String?
    /// Whether that arrival falls inside the delivery window; `.unknown` without an ETA.
    public let windowFit: WindowFit
    public let status: StopStatus
    public let statusText: String
    public let timeline: [TimelineEntry]
    /// Marked delivered by the courier (`RouteViewModel.setVisited`).
    public let visited: Bool

    public var id: Int64 { stopId }

    public init(
        stopId: Int64, sequence: Int, customerName: String, address: String, windowText: String,
        etaText: String?, windowFit: WindowFit, status: StopStatus, statusText: String, timeline: [TimelineEntry],
        visited: Bool = false
    ) {
        self.stopId = stopId
        self.sequence = sequence
        self.customerName = customerName
        self.address = address
        self.windowText = windowText
        self.etaText = etaText
        self.windowFit = windowFit
        self.status = status
        self.statusText = statusText
        self.timeline = timeline
        self.visited = visited
    }
}

public struct RouteScreenState: Equatable, Sendable {
    /// The synced route's date, `YYYY-MM-DD`; empty before the first sync.
    public let date: String
    /// In the courier's planned order.
    public let stops: [StopRow]
    public let connection: ConnectionState
    /// Show "offline: taps are kept and sent when the signal is back".
    public let offlineBanner: Bool
    /// Calls counting against the cap: running calls plus requests on their way.
    public let activeCalls: Int
    public let maxActive: Int
    /// Taps waiting to be sent.
    public let queued: Int
    /// The last thing that went wrong; nil when all is well.
    public let error: String?

    /// The server's and the core's cap on simultaneous smart calls per courier.
    public static let maxActiveCalls = 5

    public static let empty = RouteScreenState(
        date: "", stops: [], connection: .offline, offlineBanner: false, activeCalls: 0, queued: 0, error: nil
    )

    public init(
        date: String, stops: [StopRow], connection: ConnectionState, offlineBanner: Bool, activeCalls: Int,
        maxActive: Int = RouteScreenState.maxActiveCalls, queued: Int, error: String?
    ) {
        self.date = date
        self.stops = stops
        self.connection = connection
        self.offlineBanner = offlineBanner
        self.activeCalls = activeCalls
        self.maxActive = maxActive
        self.queued = queued
        self.error = error
    }
}
