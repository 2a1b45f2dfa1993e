//! Partition identity and its directory name.

use std::fmt;

/// A topic partition. Its directory is `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name (may contain `-`).
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Creates a topic partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a directory name back; topics may contain `-`, so the partition is what follows
    /// the last one.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(TopicPartition {
            topic: topic.to_owned(),
            partition: partition.parse().ok()?,
        })
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip() {
        for (topic, partition) in [("orders", 0), ("my-topic-v2", 17), ("a.b_c", 2147483647)] {
            let tp = TopicPartition::new(topic, partition);
            assert_eq!(TopicPartition::from_dir_name(&tp.dir_name()), Some(tp));
        }
        for bad in ["nodash", "-1", "topic-", "topic-x", "topic-99999999999"] {
            assert_eq!(TopicPartition::from_dir_name(bad), None, "{bad}");
        }
    }
}
