package com.callahead.demo.app.ui

import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.width
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.ExperimentalMaterial3Api
import androidx.compose.material3.HorizontalDivider
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.ModalBottomSheet
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.unit.dp
import com.callahead.demo.StopRow
import com.callahead.demo.TimelineEntry
import java.time.ZoneId
import java.time.format.DateTimeFormatter

/** The stop's timeline in a bottom sheet over the route. */
@OptIn(ExperimentalMaterial3Api::class)
@Composable
fun TimelineSheet(row: StopRow, onDismiss: () -> Unit) {
    ModalBottomSheet(onDismissRequest = onDismiss) {
        StopTimeline(row)
    }
}

/** Everything that happened to one stop's call, oldest first, as the view model tells it. */
@Composable
fun StopTimeline(row: StopRow) {
    Column(
        verticalArrangement = Arrangement.spacedBy(8.dp),
        modifier = Modifier.fillMaxWidth().padding(start = 24.dp, end = 24.dp, bottom = 32.dp),
    ) {
        Text(row.customerName, style = MaterialTheme.typography.titleLarge)
        Text(row.address, style = MaterialTheme.typography.bodyMedium)
        Text(
            text = listOfNotNull(row.windowText, row.etaText?.let { "ETA $it" }).joinToString("  ·  "),
            style = MaterialTheme.typography.bodyMedium,
        )
        StatusChip(row.status, row.statusText)
        HorizontalDivider(modifier = Modifier.padding(vertical = 8.dp))
        if (row.timeline.isEmpty()) {
            Text(
                text = "No call for this stop yet.",
                style = MaterialTheme.typography.bodyMedium,
                color = MaterialTheme.colorScheme.onSurfaceVariant,
            )
        } else {
            LazyColumn(verticalArrangement = Arrangement.spacedBy(8.dp)) {
                items(row.timeline) { entry -> TimelineItem(entry) }
            }
        }
    }
}

@Composable
private fun TimelineItem(entry: TimelineEntry) {
    Row(horizontalArrangement = Arrangement.spacedBy(12.dp)) {
        Text(
            text = clockTime.format(entry.at),
            style = MaterialTheme.typography.bodyMedium,
            fontFamily = FontFamily.Monospace,
            color = MaterialTheme.colorScheme.onSurfaceVariant,
            modifier = Modifier.width(72.dp),
        )
        Text(text = entry.label, style = MaterialTheme.typography.bodyMedium)
    }
}

private val clockTime: DateTimeFormatter = DateTimeFormatter.ofPattern("HH:mm:ss").withZone(ZoneId.systemDefault())
