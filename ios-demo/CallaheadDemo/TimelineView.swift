import CallaheadKit
import SwiftUI

/// Everything that happened to one stop's call, oldest first, as the view
/// model tells it. (Not named TimelineView: SwiftUI has one.)
struct StopTimelineView: View {
    let row: StopRow

    var body: some View {
        List {
            Section {
                VStack(alignment: .leading, spacing: 6) {
                    Text(row.customerName).font(.title2.bold())
                    Text(row.address).foregroundStyle(.secondary)
                    Text([row.windowText, row.etaText.map { "ETA \($0)" }].compactMap { $0 }.joined(separator: "  ·  "))
                    StatusChip(status: row.status, text: row.statusText)
                }
                .padding(.vertical, 4)
            }
            Section("Timeline") {
                if row.timeline.isEmpty {
                    Text("No call for this stop yet.").foregroundStyle(.secondary)
                }
                ForEach(Array(row.timeline.enumerated()), id: \.offset) { _, entry in
                    HStack(alignment: .firstTextBaseline, spacing: 12) {
                        Text(entry.at, format: .dateTime.hour().minute().second())
                            .font(.subheadline.monospacedDigit())
                            .foregroundStyle(.secondary)
                        Text(entry.label)
                    }
                }
            }
        }
    }
}
