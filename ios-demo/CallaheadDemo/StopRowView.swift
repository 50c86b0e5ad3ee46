import CallaheadKit
import SwiftUI

/// One stop in planned order: who, where, the delivery window, the estimated
/// arrival (flagged when it misses the window), the call status, and the
/// courier's actions. Tapping the text opens the stop's timeline.
struct StopRowView: View {
    let row: StopRow
    let number: Int
    let onCall: () -> Void
    let onCancel: () -> Void
    let onOpenTimeline: () -> Void

    var body: some View {
        VStack(alignment: .leading, spacing: 8) {
            Button(action: onOpenTimeline) {
                VStack(alignment: .leading, spacing: 4) {
                    HStack(spacing: 8) {
                        Text("\(number)")
                            .font(.caption.bold())
                            .foregroundStyle(.white)
                            .frame(width: 24, height: 24)
                            .background(Circle().fill(Color.accentColor))
                        Text(row.customerName)
                            .font(.headline)
                            .lineLimit(1)
                    }
                    Text(row.address)
                        .font(.subheadline)
                        .foregroundStyle(.secondary)
                        .lineLimit(2)
                    HStack(spacing: 8) {
                        Text(row.windowText)
                        if let eta = row.etaText {
                            Text("ETA \(eta)")
                        }
                        WindowFitFlag(fit: row.windowFit)
                    }
                    .font(.subheadline)
                }
                .frame(maxWidth: .infinity, alignment: .leading)
                .contentShape(Rectangle())
            }
            .buttonStyle(.plain)

            HStack {
                StatusChip(status: row.status, text: row.statusText)
                Spacer()
                if row.status.inProgress {
                    Button("Cancel", action: onCancel)
                        .buttonStyle(.bordered)
                } else {
                    Button(row.status == .idle ? "Call" : "Call again", action: onCall)
                        .buttonStyle(.borderedProminent)
                }
            }
        }
        .padding(.vertical, 4)
    }
}

/// The live call status of one stop; the words come from the view model.
struct StatusChip: View {
    let status: StopStatus
    let text: String

    var body: some View {
        Text(text)
            .font(.footnote.weight(.medium))
            .padding(.horizontal, 10)
            .padding(.vertical, 4)
            .background(Capsule().fill(tint.opacity(0.18)))
            .foregroundStyle(tint)
    }

    private var tint: Color {
        switch status {
        case .idle, .cancelled: return .secondary
        case .queued, .sending: return .blue
        case .calling, .ringing, .answered: return .purple
        case .done(let outcome):
            switch outcome {
            case .confirmed: return .green
            case .rescheduleRequested, .wantsCourier: return .orange
            case .declined, .noAnswer, .failed, .outsideCallingHours, .interrupted: return .red
            }
        case .failed: return .red
        }
    }
}

/// Only an estimate outside the window is flagged: early (the courier waits)
/// in a quieter colour than late (the customer waits). Inside or unknown stays quiet.
private struct WindowFitFlag: View {
    let fit: WindowFit

    var body: some View {
        switch fit {
        case .early: flag("early", .orange)
        case .late: flag("late", .red)
        case .inside, .unknown: EmptyView()
        }
    }

    private func flag(_ label: String, _ tint: Color) -> some View {
        Text(label)
            .font(.caption.weight(.semibold))
            .padding(.horizontal, 6)
            .padding(.vertical, 2)
            .background(RoundedRectangle(cornerRadius: 4).fill(tint.opacity(0.15)))
            .foregroundStyle(tint)
    }
}

extension StopStatus {
    /// Whether the stop's call is under way, so the courier may cancel it.
    var inProgress: Bool {
        switch self {
        case .queued, .sending, .calling, .ringing, .answered: return true
        case .idle, .done, .cancelled, .failed: return false
        }
    }
}

struct StopRowView_Previews: PreviewProvider {
    static var previews: some View {
        List {
            StopRowView(
                row: StopRow(
                    stopId: 1, sequence: 0, customerName: "Anna Schmidt", address: "Torstraße 12, Berlin",
                    windowText: "11:00–12:00", etaText: "11:10", windowFit: .inside,
                    status: .done(.confirmed), statusText: "Confirmed", timeline: []
                ),
                number: 1, onCall: {}, onCancel: {}, onOpenTimeline: {}
            )
            StopRowView(
                row: StopRow(
                    stopId: 2, sequence: 1, customerName: "Leyla Kaya", address: "Bernauer Str. 5, Berlin",
                    windowText: "12:00–13:00", etaText: "13:20", windowFit: .late,
                    status: .calling(attempt: 2, maxAttempts: 3), statusText: "Calling, attempt 2 of 3", timeline: []
                ),
                number: 2, onCall: {}, onCancel: {}, onOpenTimeline: {}
            )
        }
    }
}
