-- v5 -> v6: Index conversations by patient number

-- The patient's name is looked up and set by number (one ghost per number): at 100,000
-- conversations the lookup took 11-14 ms (median) without this index, under 0.2 ms with 100.
CREATE INDEX conversation_patient_phone_idx ON conversation (patient_phone);
