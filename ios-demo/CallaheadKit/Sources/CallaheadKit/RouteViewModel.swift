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
@MainActor
public final class RouteViewModel: ObservableObject {
    @Published public private(set) var state: RouteScreenState = .empty

    private let client: CourierClient?
    private let clock: @Sendable () -> Date
    private let inbox: AsyncStream<RouteMessage>.Continuation
    private var model = Model()
    private var closed = false
    /// One plan at a time; changes meanwhile ask for one more.
    private var planning = false
    private var planAgain = false
    private var ticker: Task<Void, Never>?

    public init(settings: ClientSettings, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.clock = clock
        var continuation: AsyncStream<RouteMessage>.Continuation!
        let messages = AsyncStream<RouteMessage> { continuation = $0 }
        inbox = continuation
        var failure: Error?
        do {
            client = try CourierClient.open(settings: settings, listener: CourierEvents(inbox: continuation))
        } catch {
            client = nil
            failure = error
        }

        // Drains the inbox until close() finishes it.
        Task { [weak self] in
            for await message in messages {
                self?.reduce(message)
            }
        }
        // ETAs move with the clock.
        ticker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 60_000_000_000)
                guard let self else { return }
                self.replan()
            }
        }
        if let failure {
            inbox.yield(.failure(failure))
        }
        if let connection = try? client?.connectionState() {
            inbox.yield(.connection(connection, fromListener: false))
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
        inBackground { client, now in
            let due = try client.stopsDueWithin(now: now, minutes: 60)
            guard !due.isEmpty else { return nil }
            let changed = try client.requestCalls(stopIds: due.map { $0.stop.id })
            return .stops(changed)
        }
    }

    public func callStop(_ stopId: Int64) {
        inBackground { client, _ in
            let changed = try client.requestCalls(stopIds: [stopId])
            return .stops(changed)
        }
    }

    public func cancel(_ stopId: Int64) {
        inBackground { client, _ in
            let changed = try await client.cancel(stopId: stopId)
            return .stops([changed])
        }
    }

    /// Moves the stop at row `from` to row `to`: shown at once, saved by the
    /// core (offline too) and sent to the server when it can.
    public func moveStop(from: Int, to: Int) {
        var ids = state.stops.map(\.stopId)
        guard !closed, from != to, ids.indices.contains(from), ids.indices.contains(to) else { return }
        ids.insert(ids.remove(at: from), at: to)
        let order = ids
        model.reorder(order)
        state = render()
        inBackground { client, _ in
            let changed = try client.reorderStops(stopIds: order)
            return .stops(changed)
        }
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
        // What is already in the inbox is still applied, so sync() callers return.
        inbox.finish()
        client?.close()
    }

    private func inBackground(_ work: @escaping @Sendable (CourierClient, Date) async throws -> RouteMessage?) {
        guard let client, !closed else { return }
        let inbox = inbox
        let clock = clock
        // The core's calls read and write SQLite: keep them off the main thread.
        Task.detached {
            do {
                if let message = try await work(client, clock()) {
                    inbox.yield(message)
                }
            } catch {
                inbox.yield(.failure(error))
            }
        }
    }

    private func replan() {
        guard let client, !closed else { return }
        if planning {
            planAgain = true
            return
        }
        planning = true
        let now = clock()
        let inbox = inbox
        Task.detached {
            inbox.yield(.planned(Result { try client.plan(now: now, origin: nil) }))
        }
    }

    // MARK: - The one writer

    private func reduce(_ message: RouteMessage) {
        var replanAfter = false
        switch message {
        case .stopChanged(let stop):
            model.put(stop, now: clock())
            replanAfter = true
        case .stops(let stops):
            stops.forEach { model.put($0, now: clock()) }
            replanAfter = true
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
            replanAfter = true
        case .failure(let error, _):
            if let e = error as? CallaheadError, case .Offline = e {
                model.wentOffline = true
            }
            model.error = Presentation.errorText(error)
        case .planned(let result):
            planning = false
            switch result {
            case .success(let planned):
                model.etas = Dictionary(planned.map { ($0.state.stop.id, $0) }, uniquingKeysWith: { $1 })
            case .failure(let error): model.error = Presentation.errorText(error)
            }
            if planAgain {
                planAgain = false
                replanAfter = true
            }
        case .dismissError:
            model.error = nil
        }
        state = render()
        switch message {
        case .synced(_, _, let applied?), .failure(_, let applied?): applied.resume()
        default: break
        }
        if replanAfter { replan() }
    }

    private func onEvent(_ e: CallEvent) {
        if e.kind == "route_replaced", !model.date.isEmpty {
            // The dispatcher changed the route: fetch it again.
            let date = model.date
            Task { [weak self] in await self?.sync(date: date) }
            return
        }
        guard let stopId = e.stopId, let label = Presentation.eventLabel(e) else { return }
        model.timelines[stopId, default: []].append(TimelineEntry(at: e.at, label: label))
    }

    private func render() -> RouteScreenState {
        let ordered = model.stops.values.sorted {
            ($0.stop.sequence, $0.stop.position) < ($1.stop.sequence, $1.stop.position)
        }
        let rows = ordered.enumerated().map { index, s -> StopRow in
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
                timeline: model.timelines[s.stop.id] ?? []
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
    var stops: [Int64: StopState] = [:]
    var timelines: [Int64: [TimelineEntry]] = [:]
    /// The latest plan: each stop's ETA and window fit.
    var etas: [Int64: PlannedStop] = [:]
    var connection: ConnectionState = .offline
    var wentOffline = false
    var heardConnection = false
    var error: String?

    mutating func replaceRoute(date: String, states: [StopState], now: Date) {
        if date != self.date { timelines.removeAll() }
        self.date = date
        let ids = Set(states.map { $0.stop.id })
        stops = stops.filter { ids.contains($0.key) }
        timelines = timelines.filter { ids.contains($0.key) }
        states.forEach { put($0, now: now) }
    }

    mutating func put(_ new: StopState, now: Date) {
        let old = stops[new.stop.id]
        // Before the first sync a callback may name a stop of an old route.
        if old == nil && date.isEmpty { return }
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

    /// The courier's new order, before the core confirms it.
    mutating func reorder(_ ids: [Int64]) {
        for (index, id) in ids.enumerated() {
            stops[id]?.stop.sequence = UInt32(index)
        }
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
