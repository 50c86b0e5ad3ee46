import Combine
import Foundation
import callahead

/// The route screen's state holder, the Swift twin of the Kotlin
/// `com.callahead.demo.RouteViewModel`: same state, same actions, same words.
///
/// It opens the `CourierClient` itself. The core's callbacks, the results of
/// background work and errors all go through one ordered inbox that the main
/// actor drains, so `state` has one writer and changes are applied in order.
/// Failures end up in `RouteScreenState.error`, never as a crash.
///
/// Stops are shown in the courier's planned order with the core's ETA and
/// window fit (`CourierClient.plan`); the plan is refreshed after every change
/// that can move it and once a minute, since ETAs move with the clock.
@MainActor
public final class RouteViewModel: ObservableObject {
    @Published public private(set) var state: RouteScreenState = .empty

    private let client: CourierClient?
    private let clock: @Sendable () -> Date
    private let inbox: AsyncStream<RouteMessage>.Continuation
    /// Local commands run one at a time, in the order given (two quick moves stay two moves).
    private let commands: AsyncStream<LocalCommand>.Continuation
    private var model = Model()
    private var origin: GeoPoint?
    private var closed = false
    private var ticker: Task<Void, Never>?

    public init(settings: ClientSettings, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.clock = clock
        var inboxContinuation: AsyncStream<RouteMessage>.Continuation!
        let messages = AsyncStream<RouteMessage> { inboxContinuation = $0 }
        var commandContinuation: AsyncStream<LocalCommand>.Continuation!
        let queued = AsyncStream<LocalCommand> { commandContinuation = $0 }
        inbox = inboxContinuation
        commands = commandContinuation
        var failure: Error?
        do {
            client = try CourierClient.open(settings: settings, listener: CourierEvents(inbox: inboxContinuation))
        } catch {
            client = nil
            failure = error
        }

        // The one writer of the state: drains the inbox until close() finishes it.
        Task { [weak self] in
            for await message in messages {
                self?.reduce(message)
            }
        }
        guard let client else {
            inbox.yield(.failure(failure ?? CallaheadError.Internal(detail: "the client did not open")))
            return
        }
        // The core's calls read and write SQLite: keep them off the main thread.
        Task.detached { [inbox] in
            for await command in queued {
                do {
                    try command(client) { inbox.yield($0) }
                } catch {
                    inbox.yield(.failure(error))
                }
            }
        }
        if let connection = try? client.connectionState() {
            inbox.yield(.connection(connection, fromListener: false))
        }
        // Offline-first: the route stored by the last sync shows at once.
        onSerial { client, post in post(.stored(try client.stops())) }
        ticker = Task { [weak self] in
            while !Task.isCancelled {
                if let self { self.refreshPlan() } else { return }
                try? await Task.sleep(nanoseconds: 60_000_000_000)
            }
        }
    }

    /// Downloads the route for `date` (`YYYY-MM-DD`); returns once the state shows it.
    public func sync(date: String) async {
        guard let client, !closed else { return }
        let result: Result<[StopState], Error>
        do {
            result = .success(try await client.syncRoute(date: date))
        } catch {
            result = .failure(error)
        }
        await withCheckedContinuation { (applied: CheckedContinuation<Void, Never>) in
            let message: RouteMessage
            switch result {
            case .success(let stops): message = .synced(date: date, stops: stops, applied: applied)
            case .failure(let error): message = .failure(error, applied: applied)
            }
            if case .terminated = inbox.yield(message) {
                applied.resume()
            }
        }
    }

    /// The big button: a smart call to every stop the courier reaches within the hour.
    public func callNextHour() {
        let clock = clock
        onSerial { client, post in
            let due = try client.stopsDueWithin(now: clock(), minutes: 60)
            if !due.isEmpty {
                post(.stops(try client.requestCalls(stopIds: due.map { $0.stop.id })))
            }
        }
    }

    public func callStop(_ stopId: Int64) {
        onSerial { client, post in post(.stops(try client.requestCalls(stopIds: [stopId]))) }
    }

    public func cancel(_ stopId: Int64) {
        guard let client, !closed else { return }
        let inbox = inbox
        Task.detached {
            do {
                let changed = try await client.cancel(stopId: stopId)
                inbox.yield(.stops([changed]))
            } catch {
                inbox.yield(.failure(error))
            }
        }
    }

    /// Moves the stop at row `from` to row `to` (drag to reorder). Shown at
    /// once, saved locally (offline too), synced to the server by the core.
    public func moveStop(from: Int, to: Int) {
        inbox.yield(.move(from: from, to: to))
    }

    /// Marks a stop delivered (or not): it leaves the ETA chain.
    public func setVisited(_ stopId: Int64, visited: Bool) {
        let plan = planNow()
        onSerial { client, post in
            post(.stops([try client.setVisited(stopId: stopId, visited: visited)]))
            try plan(client, post)
        }
    }

    /// The courier's position, when the app knows it: ETAs start from there.
    public func setOrigin(_ origin: GeoPoint?) {
        self.origin = origin
        refreshPlan()
    }

    /// Recomputes ETAs now (e.g. when the screen comes back).
    public func refreshPlan() {
        onSerial(planNow())
    }

    /// Hides the current error.
    public func dismissError() {
        inbox.yield(.dismissError)
    }

    /// Stops the client's background work; the local database keeps everything.
    public func close() {
        guard !closed else { return }
        closed = true
        ticker?.cancel()
        commands.finish()
        // What is already in the inbox is still applied, so sync() callers return.
        inbox.finish()
        client?.shutdown()
    }

    private func onSerial(_ command: @escaping LocalCommand) {
        guard client != nil, !closed else { return }
        commands.yield(command)
    }

    private func planNow() -> LocalCommand {
        let clock = clock
        let origin = origin
        return { client, post in post(.planned(try client.plan(now: clock(), origin: origin))) }
    }

    // MARK: - The one writer

    private func reduce(_ message: RouteMessage) {
        switch message {
        case .stopChanged(let stop):
            model.put(stop, now: clock())
        case .stops(let stops):
            stops.forEach { model.put($0, now: clock()) }
        case .event(let event):
            onEvent(event)
        case .connection(let connection, let fromListener):
            if fromListener {
                model.heardConnection = true
                // Offline is the core's default before it tries; only a
                // reported drop (or a failed request) shows the banner.
                if connection == .offline { model.wentOffline = true }
                if connection == .online { model.wentOffline = false }
                model.connection = connection
            } else if !model.heardConnection {
                model.connection = connection
            }
        case .synced(let date, let stops, _):
            model.replaceRoute(date: date, states: stops, now: clock())
            model.error = nil
            refreshPlan()
            loadTimelines(stops.map { $0.stop.id })
        case .stored(let stops):
            if !model.hasRoute {
                model.replaceRoute(date: model.date, states: stops, now: clock())
                loadTimelines(stops.map { $0.stop.id })
            }
        case .timelines(let stored):
            model.loadTimelines(stored)
        case .planned(let plan):
            model.plan(plan, now: clock())
        case .move(let from, let to):
            if let order = model.move(from: from, to: to) {
                let plan = planNow()
                onSerial { client, post in
                    post(.stops(try client.reorderStops(stopIds: order)))
                    try plan(client, post)
                }
            }
        case .failure(let error, _):
            if let e = error as? CallaheadError, case .Offline = e {
                model.wentOffline = true
            }
            model.error = Presentation.errorText(error)
        case .dismissError:
            model.error = nil
        }
        state = render()
        switch message {
        case .synced(_, _, let applied?), .failure(_, let applied?): applied.resume()
        default: break
        }
    }

    /// Each stop's story as the core stored it: complete after a restart, offline too.
    private func loadTimelines(_ ids: [Int64]) {
        onSerial { client, post in
            var stored: [Int64: StopTimeline] = [:]
            for id in ids { stored[id] = try client.timeline(stopId: id) }
            post(.timelines(stored))
        }
    }

    private func onEvent(_ e: CallEvent) {
        // Already part of a timeline loaded from the core.
        guard model.seenSeqs.insert(e.seq).inserted else { return }
        if e.kind == "route_replaced", !model.date.isEmpty {
            // The dispatcher changed the route: fetch it again.
            let date = model.date
            Task { [weak self] in await self?.sync(date: date) }
            return
        }
        if e.kind == "route_planned" {
            // Reordered on another of the courier's devices.
            refreshPlan()
            return
        }
        guard let stopId = e.stopId, let label = Presentation.eventLabel(e) else { return }
        model.timelines[stopId, default: []].append(TimelineEntry(at: e.at, label: label))
    }

    private func render() -> RouteScreenState {
        let rows = model.ordered().enumerated().map { index, s -> StopRow in
            let status = Presentation.status(s)
            let planned = model.etas[s.stop.id]
            return StopRow(
                stopId: s.stop.id,
                sequence: index,
                customerName: s.stop.customerName,
                address: s.stop.address,
                windowText: Presentation.windowText(s),
                etaText: planned?.eta.map { Presentation.time($0, s.stop.timeZone) },
                windowFit: Presentation.windowFit(planned?.windowFit),
                status: status,
                statusText: Presentation.statusText(s, status),
                timeline: model.timelines[s.stop.id] ?? [],
                visited: s.visited
            )
        }
        let active = model.stops.values.filter { s in
            if let status = s.call?.status, status != .finished, status != .cancelled { return true }
            return s.outbox == .sending
        }.count
        return RouteScreenState(
            date: model.date,
            stops: rows,
            connection: model.connection,
            offlineBanner: model.wentOffline && model.connection != .online,
            activeCalls: active,
            queued: model.stops.values.filter { $0.outbox == .queued }.count,
            error: model.error
        )
    }
}

/// Mutable state, touched only by the view model on the main actor.
private struct Model {
    var date = ""
    /// A route was synced or read from the local database.
    var hasRoute = false
    var stops: [Int64: StopState] = [:]
    var timelines: [Int64: [TimelineEntry]] = [:]
    /// Events already in `timelines`, by seq: live ones are not added twice.
    var seenSeqs: Set<UInt64> = []
    /// ETA and window fit by stop, from the last plan.
    var etas: [Int64: PlannedStop] = [:]
    var connection: ConnectionState = .offline
    var wentOffline = false
    var heardConnection = false
    var error: String?

    /// Replaces each stop's timeline with the core's stored one (events, then a tap not yet sent).
    mutating func loadTimelines(_ stored: [Int64: StopTimeline]) {
        for (id, t) in stored where stops[id] != nil {
            var entries = t.events.compactMap { e in
                Presentation.eventLabel(e).map { TimelineEntry(at: e.at, label: $0) }
            }
            // A tap not yet sent is always the newest part of the story.
            if let requested = t.requestedAt { entries.append(TimelineEntry(at: requested, label: "Queued")) }
            timelines[id] = entries
            t.events.forEach { seenSeqs.insert($0.seq) }
        }
    }

    mutating func replaceRoute(date: String, states: [StopState], now: Date) {
        if date != self.date { timelines.removeAll() }
        self.date = date
        hasRoute = true
        let ids = Set(states.map { $0.stop.id })
        stops = stops.filter { ids.contains($0.key) }
        timelines = timelines.filter { ids.contains($0.key) }
        etas = etas.filter { ids.contains($0.key) }
        states.forEach { put($0, now: now) }
    }

    mutating func put(_ new: StopState, now: Date) {
        let old = stops[new.stop.id]
        // Before the route is known a callback may name a stop of an old one.
        if old == nil && !hasRoute { return }
        let merged = Model.newer(old, new)
        stops[new.stop.id] = merged
        let before = old?.outbox
        let after = merged.outbox
        if after == .queued && before == nil {
            timelines[new.stop.id, default: []].append(TimelineEntry(at: now, label: "Queued"))
        }
        if case .failed(_, let message)? = after {
            if case .failed? = before {} else {
                timelines[new.stop.id, default: []].append(TimelineEntry(at: now, label: "Not sent: \(message)"))
            }
        }
    }

    mutating func plan(_ plan: [PlannedStop], now: Date) {
        etas.removeAll()
        for p in plan where stops[p.state.stop.id] != nil {
            etas[p.state.stop.id] = p
            put(p.state, now: now)
        }
    }

    /// Planned order, with the stop at row `from` moved to row `to`; nil if nothing moves.
    mutating func move(from: Int, to: Int) -> [Int64]? {
        var order = ordered().map { $0.stop.id }
        guard order.indices.contains(from), order.indices.contains(to), from != to else { return nil }
        order.insert(order.remove(at: from), at: to)
        // Shown at once; the core's answer confirms it.
        for (index, id) in order.enumerated() {
            stops[id]?.stop.sequence = UInt32(index)
        }
        return order
    }

    func ordered() -> [StopState] {
        stops.values.sorted { ($0.stop.sequence, $0.stop.position) < ($1.stop.sequence, $1.stop.position) }
    }

    /// Callbacks come from two of the core's tasks (the sender and the
    /// websocket), so an older snapshot of a call can arrive after a newer
    /// one: keep the newer call.
    static func newer(_ old: StopState?, _ new: StopState) -> StopState {
        guard let o = old?.call, let n = new.call, o.id == n.id else { return new }
        guard progress(n) < progress(o) else { return new }
        var kept = new
        kept.call = o
        return kept
    }

    private static func progress(_ c: Call) -> (Date, Int) {
        let rank: Int
        switch c.status {
        case .scheduled: rank = 0
        case .dialing: rank = 1
        case .ringing: rank = 2
        case .answered: rank = 3
        case .finished, .cancelled: rank = 4
        }
        return (c.updatedAt, Int(c.attemptsMade) * 10 + rank)
    }
}
