import Foundation
import callahead

/// Everything that changes the route screen, applied one at a time, in
/// order, by the view model on the main actor.
enum RouteMessage {
    case stopChanged(StopState)
    case stops([StopState])
    case event(CallEvent)
    case connection(ConnectionState, fromListener: Bool)
    /// `applied` resumes `sync(date:)` once the state shows the route.
    case synced(date: String, stops: [StopState], applied: CheckedContinuation<Void, Never>?)
    /// The route kept by the last sync, shown before the first sync of this run.
    case stored([StopState])
    case planned([PlannedStop])
    /// Each stop's story as the core stored it (complete after a restart).
    case timelines([Int64: StopTimeline])
    case move(from: Int, to: Int)
    case failure(Error, applied: CheckedContinuation<Void, Never>? = nil)
    case dismissError
}

/// Quick local work on the core (SQLite reads and writes) that posts what
/// changed; run one at a time, in the order given.
typealias LocalCommand = @Sendable (CourierClient, (RouteMessage) -> Void) throws -> Void

/// The core's listener. The core calls it on its own threads; it only
/// appends to the view model's ordered inbox and returns at once. (A
/// `Task { @MainActor in … }` per callback would not keep their order.)
final class CourierEvents: CourierListener, @unchecked Sendable {
    // AsyncStream.Continuation is safe to call from any thread.
    private let inbox: AsyncStream<RouteMessage>.Continuation

    init(inbox: AsyncStream<RouteMessage>.Continuation) {
        self.inbox = inbox
    }

    func onStopChanged(stop: StopState) {
        inbox.yield(.stopChanged(stop))
    }

    func onConnectionChanged(state: ConnectionState) {
        inbox.yield(.connection(state, fromListener: true))
    }

    func onEvent(event: CallEvent) {
        inbox.yield(.event(event))
    }
}
