import Foundation
import callahead

/// Pure mappings from the bindings' types to what the screen shows; the
/// same rules and words as the Kotlin view model's `Presentation`.
@MainActor
enum Presentation {
    /// A request waiting or refused says more than an older call does.
    static func status(_ s: StopState) -> StopStatus {
        switch s.outbox {
        case .some(.failed(let code, let message)): return .failed(code: code, message: message)
        case .some(.queued): return .queued
        case .some(.sending): return .sending
        case .none: break
        }
        guard let call = s.call else { return .idle }
        let max = Int(call.maxAttempts)
        let made = Int(call.attemptsMade)
        switch call.status {
        // Before the first attempt, or waiting for the next one.
        case .scheduled: return .calling(attempt: min(made + 1, max), maxAttempts: max)
        case .dialing: return .calling(attempt: Swift.max(made, 1), maxAttempts: max)
        case .ringing: return .ringing
        case .answered: return .answered
        case .finished: return .done(call.outcome ?? .failed)
        case .cancelled: return .cancelled
        }
    }

    static func statusText(_ s: StopState, _ status: StopStatus) -> String {
        switch status {
        case .idle: return "Not called"
        case .queued: return "Queued"
        case .sending: return "Sending…"
        case .calling(let attempt, let maxAttempts):
            if s.call?.status == .scheduled, let next = s.call?.nextAttemptAt, attempt > 1 {
                return "Attempt \(attempt) of \(maxAttempts) at \(time(next, s.stop.timeZone))"
            }
            return "Calling, attempt \(attempt) of \(maxAttempts)"
        case .ringing: return "Ringing"
        case .answered: return "Answered, listening"
        case .done(let outcome): return outcomeText(outcome)
        case .cancelled: return "Cancelled"
        case .failed(_, let message): return "Not sent: \(message)"
        }
    }

    static func outcomeText(_ o: Outcome) -> String {
        switch o {
        case .confirmed: return "Confirmed"
        case .rescheduleRequested: return "Wants another time"
        case .declined: return "Declined"
        case .wantsCourier: return "Wants to talk to you"
        case .noAnswer: return "No answer"
        case .failed: return "Call failed"
        case .outsideCallingHours: return "Not called: outside calling hours"
        case .interrupted: return "Call cut off: the server restarted"
        }
    }

    /// "10:00–11:00" in the customer's time zone.
    static func windowText(_ s: StopState) -> String {
        "\(time(s.stop.windowStart, s.stop.timeZone))–\(time(s.stop.windowEnd, s.stop.timeZone))"
    }

    static func windowFit(_ fit: callahead.WindowFit?) -> WindowFit {
        switch fit {
        case .some(.inside): return .inside
        case .some(.early): return .early
        case .some(.late): return .late
        case .none: return .unknown
        }
    }

    /// "HH:mm" in `timeZone` (UTC if the name is unknown).
    static func time(_ at: Date, _ timeZone: String) -> String {
        if let cached = formatters[timeZone] {
            return cached.string(from: at)
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "HH:mm"
        formatter.timeZone = TimeZone(identifier: timeZone) ?? TimeZone(identifier: "UTC")
        formatters[timeZone] = formatter
        return formatter.string(from: at)
    }

    private static var formatters: [String: DateFormatter] = [:]

    /// The timeline line for a server event; nil for events that are not a stop's story.
    static func eventLabel(_ e: CallEvent) -> String? {
        let attempt = e.attempt.map { "Attempt \($0)" } ?? "Attempt"
        switch e.kind {
        case "call_requested": return "Call requested"
        case "attempt_placed": return "\(attempt) dialing"
        case "ringing": return "\(attempt) ringing"
        case "answered": return "\(attempt) answered"
        case "key_pressed": return "Key \(e.key ?? "?") pressed"
        case "attempt_ended":
            return "\(attempt) ended: \(e.attemptResult?.replacingOccurrences(of: "_", with: " ") ?? "unknown")"
        case "call_finished": return e.outcome.map(outcomeText) ?? "Finished"
        case "call_cancelled": return "Cancelled"
        case "call_deferred": return "Waits for calling hours"
        case "direct_call_logged": return "You called: \(e.note ?? "")"
        case "courier_bridged": return e.connected == true ? "Put through to you" : "You were busy: call them back"
        default: return nil
        }
    }

    /// A sentence for the error alert.
    static func errorText(_ error: Error) -> String {
        guard let e = error as? CallaheadError else { return error.localizedDescription }
        switch e {
        case .Offline(let message): return "Offline: \(message)"
        case .Unauthorized(let message): return "Signed out: \(message)"
        case .Server(let code, let message): return "The server refused (\(code)): \(message)"
        case .InvalidInput(let message): return message
        case .Storage(let message): return "Local storage failed: \(message)"
        case .Internal(let message): return "Internal error: \(message)"
        }
    }
}
